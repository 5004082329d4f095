mod batch;
mod cli;
mod config_cmd;
mod credentials;
mod harness;
mod init_cmd;
mod logging;
mod support;
