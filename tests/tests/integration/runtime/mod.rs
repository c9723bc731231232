//! The plugin runtime: workers in process with a scripted plugin (`in_process`), delivery lanes for each
//! `ordering` (`lanes`), batches over HTTP (`batches`), a service answering 429 (`throttling`), a plugin service over HTTP
//! behind the runtime (`http`), the Python example behind the real bridge binary, bridges killed with
//! SIGKILL (`worker_kill`), and a plugin endpoint down under load (`plugin_outage`, `make outage`).

mod batches;
mod http;
mod in_process;
mod lanes;
mod plugin_outage;
mod python_plugin;
mod throttling;
mod worker_kill;
