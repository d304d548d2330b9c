//! The owned keys of CloudStack's `agent.properties`.

use askama::Template;

use crate::model::{Agent, Topology};

#[derive(Template)]
#[template(path = "agent.properties", escape = "none")]
pub(super) struct AgentProperties<'a> {
    source: &'a str,
    keys: Vec<(&'static str, String)>,
}

pub(super) fn agent_properties<'a>(topo: &'a Topology, agent: &'a Agent) -> AgentProperties<'a> {
    AgentProperties {
        source: &topo.source,
        keys: agent.keys(),
    }
}
