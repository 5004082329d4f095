mod concurrency;
mod roundtrip;
mod store;
