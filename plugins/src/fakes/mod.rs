//! Test and demo support, not part of any plugin: local stand-ins of the SaaS the seed plugins call, for
//! their clients' tests, the integration tests and the demo (`switchyard-seed-plugin fake-twilio`). Each
//! answers the same requests the way the real service does; none is meant to run in production.
//!
//! * [`sheets`]: Google's OAuth token endpoint and the Sheets API v4 calls of
//!   [`SheetsClient`](crate::sheets::SheetsClient), with a published demo key.
//! * [`twilio`]: Twilio's Messages API as [`TwilioClient`](crate::sms::TwilioClient) calls it.
//! * [`server`]: what both share: the handle of a running fake and the failure switch.

pub mod server;
pub mod sheets;
pub mod twilio;
