//! Integration and black-box tests against the real broker (`make test` starts it).

mod dead_letters;
mod routing;
