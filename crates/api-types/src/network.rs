//! Network models (`/networks`), fields in dockerd's order so clients see the same JSON.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One IPAM pool of a network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct IpamConfig {
    pub subnet: String,
    #[serde(rename = "IPRange", skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    #[serde(
        rename = "AuxiliaryAddresses",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub aux_addresses: BTreeMap<String, String>,
}

/// A network's IPAM section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Ipam {
    pub driver: String,
    pub options: Option<BTreeMap<String, String>>,
    pub config: Vec<IpamConfig>,
}

/// `ConfigFrom`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ConfigReference {
    pub network: String,
}

/// A container's endpoint in network inspect's `Containers`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct EndpointResource {
    pub name: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    pub mac_address: String,
    #[serde(rename = "IPv4Address")]
    pub ipv4_address: String,
    #[serde(rename = "IPv6Address")]
    pub ipv6_address: String,
}

/// `GET /networks/{id}` and the items of `GET /networks`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkResource {
    pub name: String,
    pub id: String,
    pub created: String,
    pub scope: String,
    pub driver: String,
    #[serde(rename = "EnableIPv4")]
    pub enable_ipv4: bool,
    #[serde(rename = "EnableIPv6")]
    pub enable_ipv6: bool,
    #[serde(rename = "IPAM")]
    pub ipam: Ipam,
    pub internal: bool,
    pub attachable: bool,
    pub ingress: bool,
    pub config_from: ConfigReference,
    pub config_only: bool,
    pub containers: BTreeMap<String, EndpointResource>,
    pub options: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
}
