mod busy_store;
mod gateway;
mod metrics;
mod openapi;
