//! `hale-wsfc`: Hale agents under Windows Server Failover Clustering.
//!
//! One binary hosts any agent of this build through the same [`hale_ocf::Agent`] trait and
//! [`hale_ocf::execute`] the OCF runner uses. The parameters of each resource instance are
//! stored in a file ([`config`]); the adapter turns them into the `OCF_*` environment an agent
//! expects ([`host`]), and runs the agent in one of three WSFC shapes:
//! - `service` (Generic Service, recommended): [`supervise`] drives the SCM states,
//! - `app` (Generic Application): the same loop with the process exit code as the result,
//! - `script` (Generic Script): a generated JScript calling the adapter ([`script`]).
//!
//! What WSFC sees for each OCF result is decided in one place, [`mapping::classify`].

pub mod config;
pub mod host;
pub mod mapping;
pub mod script;
pub mod supervise;
