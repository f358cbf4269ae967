//! `opengslb-cli geo mappings [list|set CIDR REGION|delete CIDR]` and
//! `geo test IP`: geolocation mappings managed through the API
//! (`/api/v1/geo/mappings`) and a routing decision explained
//! (`/api/v1/geo/test`). The Overwatch checks the cidr and region and
//! names the field at fault; nothing is checked twice here.

use super::args::Invocation;
use super::client::{CliError, Client, encode_segment, query};
use super::render::{key_values, rows, table};
use serde_json::{Value, json};

pub fn run(inv: &Invocation, client: &Client, json_out: bool) -> Result<String, CliError> {
    let arg = |i| inv.arg(i).unwrap_or("");
    let (v, text): (Value, fn(&Value, &str) -> String) = match inv.command.name {
        "geo mappings list" => (client.call("GET", "/api/v1/geo/mappings", None)?, |v, _| {
            let keys = ["cidr", "region", "source", "shadowed_by_config", "comment"];
            table(
                &["CIDR", "REGION", "SOURCE", "SHADOWED", "COMMENT"],
                &rows(v.get("mappings"), &keys),
            )
        }),
        "geo mappings set" => {
            let body = json!({"cidr": arg(0), "region": arg(1), "comment": inv.flag("comment").unwrap_or("")});
            (
                client.call("PUT", "/api/v1/geo/mappings", Some(&body))?,
                |v, _| {
                    format!(
                        "geo mapping {} -> {} set\n",
                        v["cidr"].as_str().unwrap_or(""),
                        v["region"].as_str().unwrap_or("")
                    )
                },
            )
        }
        "geo mappings delete" => (
            client.call(
                "DELETE",
                &format!("/api/v1/geo/mappings/{}", encode_segment(arg(0))),
                None,
            )?,
            |_, cidr| format!("geo mapping {cidr} deleted\n"),
        ),
        _ => (
            client.call(
                "GET",
                &format!("/api/v1/geo/test{}", query(&[("ip", Some(arg(0)))])),
                None,
            )?,
            |v, _| key_values(v),
        ),
    };
    if json_out {
        return Ok(super::commands::pretty(&v));
    }
    Ok(text(&v, arg(0)))
}
