//! Fracta's Kubernetes backend. An adapter describes a launch (`fracta_core::launch`); this
//! crate turns it into the objects the seed's "K8s Deployment" section names: a batch agent
//! is a `Job`, a stream agent a `Pod` serving its session on the network, the files the
//! adapter writes a `ConfigMap` copied into place by an init container, and the secrets
//! Fracta materializes a per-agent `Secret` (origins kept in a cluster Secret stay
//! `secretKeyRef`s). No secret value is ever part of a rendered object: the per-agent Secret
//! is rendered with a description of where each value comes from, and filled only when it is
//! applied.

pub mod client;
pub mod render;
pub mod run;

pub use client::{KubeBackend, KubeError, Phase};
pub use render::{RenderError, Rendered, SecretSource, Workload, render};

#[cfg(test)]
mod tests;

#[cfg(test)]
mod client_tests;
#[cfg(test)]
mod git_remote;
#[cfg(test)]
mod pod_tests;
#[cfg(test)]
mod supervised_tests;
