//! `opengslb-cli servers create|update|delete ADDRESS:PORT`: servers
//! managed through the API (`/api/v1/servers`, as in v1.1). The Overwatch
//! checks the body and names the field at fault; here only ADDRESS:PORT
//! and --weight are checked before anything is sent.

use super::args::Invocation;
use super::client::{CliError, Client, encode_segment};
use crate::api::routes::parse_host_port;
use serde_json::{Map, Value, json};

pub fn run(inv: &Invocation, client: &Client, json_out: bool) -> Result<String, CliError> {
    let id = inv.arg(0).unwrap_or("");
    let (address, port) =
        parse_host_port(id).map_err(|e| CliError::Usage(format!("ADDRESS:PORT: {e}")))?;
    let path = format!("/api/v1/servers/{}", encode_segment(id));
    let mut body = Map::new();
    for field in ["region", "service", "name"] {
        if let Some(v) = inv.flag(field) {
            body.insert(field.into(), json!(v));
        }
    }
    if let Some(w) = inv.flag("weight") {
        let w: u32 = w
            .parse()
            .map_err(|_| CliError::Usage(format!("--weight: {w:?} is not a whole number")))?;
        body.insert("weight".into(), json!(w));
    }
    let (v, done) = match inv.command.name {
        "servers create" => {
            body.insert("address".into(), json!(address));
            body.insert("port".into(), json!(port));
            let v = client.call("POST", "/api/v1/servers", Some(&Value::Object(body)))?;
            (v, "created")
        }
        "servers update" => {
            let v = client.call("PUT", &path, Some(&Value::Object(body)))?;
            (v, "updated")
        }
        _ => (client.call("DELETE", &path, None)?, "deleted"),
    };
    if json_out {
        return Ok(format!(
            "{}\n",
            serde_json::to_string_pretty(&v).unwrap_or_default()
        ));
    }
    let mut text = format!("server {id} {done}\n");
    if let Some(w) = v["server"]["warning"].as_str() {
        text.push_str(&format!("warning: {w}\n"));
    }
    Ok(text)
}
