//! The floor of a fresh apply, for `scripts/bench-kube`: how fast this API server accepts
//! server-side applies from a client that does nothing else (no render, no plan, no lists,
//! no inventory, no rate limit). It applies every object of a multi-document YAML file into
//! one namespace, CONCURRENCY requests in flight, kinds one after another (namespaced kinds
//! only), and prints the seconds it took.
//!
//!   cargo run --release -p envboot-kube --example apply-floor -- FILE NAMESPACE CONCURRENCY
//!
//! It uses the current context of `KUBECONFIG`. Not part of envboot: benchmarks only.

use std::time::Instant;

use futures::StreamExt;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::pinned_kind;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [file, namespace, concurrency] = args.as_slice() else {
        return Err("usage: apply-floor FILE NAMESPACE CONCURRENCY".into());
    };
    let concurrency: usize = concurrency.parse()?;
    let text = std::fs::read_to_string(file)?;
    let mut objects: Vec<serde_json::Value> = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(&text) {
        let value: serde_json::Value = serde::Deserialize::deserialize(document)?;
        if value.is_object() {
            objects.push(value);
        }
    }
    let client = kube::Client::try_default().await?;
    // one group of objects per kind, in the file's order of kinds
    let mut kinds: Vec<(String, String, Vec<serde_json::Value>)> = Vec::new();
    for o in objects {
        let api_version = o["apiVersion"].as_str().unwrap_or_default().to_string();
        let kind = o["kind"].as_str().unwrap_or_default().to_string();
        match kinds
            .iter_mut()
            .find(|(a, k, _)| *a == api_version && *k == kind)
        {
            Some((_, _, group)) => group.push(o),
            None => kinds.push((api_version, kind, vec![o])),
        }
    }
    let started = Instant::now();
    let mut applied = 0usize;
    for (api_version, kind, group) in kinds {
        let (g, v) = api_version.rsplit_once('/').unwrap_or(("", &api_version));
        let (resource, caps) = pinned_kind(&client, &GroupVersionKind::gvk(g, v, &kind)).await?;
        if caps.scope != kube::discovery::Scope::Namespaced {
            continue;
        }
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
        let params = PatchParams::apply("apply-floor").force();
        let mut done = futures::stream::iter(group.iter())
            .map(|o| {
                let (api, params) = (&api, &params);
                async move {
                    let name = o["metadata"]["name"].as_str().unwrap_or_default();
                    let mut o = o.clone();
                    o["metadata"]["namespace"] = serde_json::json!(namespace);
                    api.patch(name, params, &Patch::Apply(&o)).await.map(|_| ())
                }
            })
            .buffer_unordered(concurrency);
        while let Some(result) = done.next().await {
            result?;
            applied += 1;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{applied} objects in {seconds:.3} s ({:.0} a second) at concurrency {concurrency}",
        applied as f64 / seconds
    );
    Ok(())
}
