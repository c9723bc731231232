//! The control plane: the routing table and the threads that keep it in step with the control topics.

pub mod materializer;
pub mod routes;
#[cfg(test)]
pub(crate) mod test_support;
