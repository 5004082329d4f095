mod busy_store;
mod openapi;
