mod batch;
mod harness;
