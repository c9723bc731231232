//! The registry's web console under `/console/`: what a client without a browser can try against it
//! (`pages`), and the flows of a team, a plugin team and an admin in a real headless Chromium
//! (`switchyard_tests::browser`), on the harness checked on pages of its own (`harness`).

mod browser;
mod harness;
mod pages;
