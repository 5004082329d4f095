mod busy_store;
mod gateway;
mod openapi;
