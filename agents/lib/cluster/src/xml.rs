//! Reading Pacemaker's `--output-as=xml` answers (`<pacemaker-result>`).

use crate::{ClusterError, ErrorKind, ResourceStatus, Role};
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};

/// The `<status code message>` of a result, with its first `<error>` line.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Status {
    pub code: Option<i32>,
    pub message: String,
    pub error: Option<String>,
}

impl Status {
    /// The reason line: the tool's own error when it gave one.
    pub fn reason(&self) -> String {
        self.error.clone().unwrap_or_else(|| self.message.clone())
    }
}

fn attr(e: &BytesStart, name: &str) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.as_ref() == name)
        .and_then(|a| a.normalized_value(XmlVersion::Implicit1_0).ok().map(|v| v.into_owned()))
}

fn malformed(e: impl std::fmt::Display) -> ClusterError {
    ClusterError::new(ErrorKind::Malformed, format!("unreadable answer from the cluster manager: {e}"))
}

/// The status element and the `value` of every `<attribute>` (in order).
pub fn attributes(xml: &str) -> Result<(Status, Vec<String>), ClusterError> {
    let mut r = Reader::from_str(xml);
    let mut status = Status::default();
    let mut values = Vec::new();
    let mut in_error = false;
    let mut error = String::new();
    let mut seen_result = false;
    loop {
        match r.read_event().map_err(malformed)? {
            Event::Start(e) | Event::Empty(e) if e.name().as_ref() == "pacemaker-result" => seen_result = true,
            Event::Start(e) | Event::Empty(e) if e.name().as_ref() == "attribute" => {
                values.extend(attr(&e, "value"));
            }
            Event::Start(e) | Event::Empty(e) if e.name().as_ref() == "status" => {
                status.code = attr(&e, "code").and_then(|c| c.parse().ok());
                status.message = attr(&e, "message").unwrap_or_default();
            }
            Event::Start(e) if e.name().as_ref() == "error" => in_error = status.error.is_none(),
            Event::End(e) if e.name().as_ref() == "error" && in_error => {
                in_error = false;
                let text = error.trim();
                status.error = (!text.is_empty()).then(|| text.to_string());
                error.clear();
            }
            Event::Text(t) if in_error => error.push_str(&t.xml10_content()),
            Event::GeneralRef(g) if in_error => match g.resolve_char_ref() {
                Ok(Some(c)) => error.push(c),
                _ => error.push_str(resolve_predefined_entity(&g.xml10_content()).unwrap_or("?")),
            },
            Event::Eof => break,
            _ => {}
        }
    }
    if !seen_result {
        return Err(malformed("no <pacemaker-result>"));
    }
    Ok((status, values))
}

fn primitive(e: &BytesStart, parents: &[(String, String)]) -> Result<ResourceStatus, ClusterError> {
    let find =
        |kinds: &[&str]| parents.iter().rev().find(|(k, _)| kinds.contains(&k.as_str())).map(|(_, id)| id.clone());
    Ok(ResourceStatus {
        id: attr(e, "id").ok_or_else(|| malformed("a resource without an id"))?,
        clone: find(&["clone", "bundle"]),
        group: find(&["group"]),
        agent: attr(e, "resource_agent").unwrap_or_default(),
        role: Role::parse(&attr(e, "role").unwrap_or_default()),
        active: attr(e, "active").as_deref() == Some("true"),
        failed: attr(e, "failed").as_deref() == Some("true"),
        managed: attr(e, "managed").as_deref() != Some("false"),
        nodes: Vec::new(),
    })
}

/// The resources section of `crm_mon --output-as=xml`: every primitive with its clone,
/// group and nodes. Other sections (nodes, history) have `<node>` and `<resource_history>`
/// elements of their own and are skipped.
pub fn resources(xml: &str) -> Result<(Status, Vec<ResourceStatus>), ClusterError> {
    let (status, _) = attributes(xml)?;
    let mut r = Reader::from_str(xml);
    let mut out = Vec::new();
    // Containers open around the current element: (element name, id).
    let mut parents: Vec<(String, String)> = Vec::new();
    let mut in_resources = false;
    let mut current: Option<ResourceStatus> = None;
    loop {
        match r.read_event().map_err(malformed)? {
            Event::Start(e) if e.name().as_ref() == "resources" => in_resources = true,
            Event::End(e) if e.name().as_ref() == "resources" => in_resources = false,
            Event::Start(e) if in_resources && e.name().as_ref() == "resource" => {
                current = Some(primitive(&e, &parents)?)
            }
            Event::Empty(e) if in_resources && e.name().as_ref() == "resource" => out.push(primitive(&e, &parents)?),
            Event::Start(e) if in_resources && current.is_none() => {
                let id = attr(&e, "id").unwrap_or_default();
                parents.push((e.name().as_ref().to_string(), id));
            }
            Event::End(e) if in_resources && e.name().as_ref() == "resource" => out.extend(current.take()),
            Event::End(_) if in_resources && current.is_none() => {
                parents.pop();
            }
            Event::Start(e) | Event::Empty(e) if e.name().as_ref() == "node" => {
                if let (Some(c), Some(n)) = (current.as_mut(), attr(&e, "name")) {
                    c.nodes.push(n);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok((status, out))
}
