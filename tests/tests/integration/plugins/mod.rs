//! The seed plugins (`switchyard-plugins`) on the runtime, from a routed event to its effect.

mod installations;
mod seed_plugins;
mod sheets_batches;
