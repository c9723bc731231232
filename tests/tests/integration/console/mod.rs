//! The registry's web console under `/console/`, in a real headless Chromium (`switchyard_tests::browser`):
//! the harness itself on pages of its own (`harness`).

mod harness;
