//! Reading Kubernetes directly: a client for the sandbox's API server, and the selector of
//! what an environment owns there.

use std::collections::HashMap;

/// A Kubernetes client for the sandbox (its kubeconfig, context `envboot-sandbox`).
pub async fn kube_client(settings: &HashMap<String, String>) -> kube::Client {
    let kubeconfig =
        kube::config::Kubeconfig::read_from(&settings["KUBECONFIG"]).expect("read kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions {
            context: Some("envboot-sandbox".into()),
            ..Default::default()
        },
    )
    .await
    .expect("kubeconfig");
    kube::Client::try_from(config).expect("kube client")
}

/// List parameters selecting what carries environment `name`'s label.
pub fn labelled(name: &str) -> kube::api::ListParams {
    kube::api::ListParams::default().labels(&format!("envboot.dev/environment={name}"))
}

/// The pods in `namespace` that `selector` selects.
pub async fn pods(
    client: &kube::Client,
    namespace: &str,
    selector: &str,
) -> Vec<k8s_openapi::api::core::v1::Pod> {
    kube::Api::<k8s_openapi::api::core::v1::Pod>::namespaced(client.clone(), namespace)
        .list(&kube::api::ListParams::default().labels(selector))
        .await
        .expect("list pods")
        .items
}

/// Waits, through watches, until every one of `pods` is deleted (its name gone, or taken by a
/// pod with another uid); panics after `timeout`.
pub async fn await_pods_deleted(
    client: &kube::Client,
    pods: &[k8s_openapi::api::core::v1::Pod],
    timeout: std::time::Duration,
) {
    use kube::runtime::wait::{await_condition, conditions};
    for pod in pods {
        let (Some(ns), Some(name), Some(uid)) = (
            pod.metadata.namespace.as_deref(),
            pod.metadata.name.as_deref(),
            pod.metadata.uid.as_deref(),
        ) else {
            panic!("a pod without namespace, name or uid: {pod:?}");
        };
        let api = kube::Api::<k8s_openapi::api::core::v1::Pod>::namespaced(client.clone(), ns);
        tokio::time::timeout(
            timeout,
            await_condition(api, name, conditions::is_deleted(uid)),
        )
        .await
        .unwrap_or_else(|_| panic!("pod {ns}/{name} still exists after {timeout:?}"))
        .expect("watch the pod");
    }
}

/// The body of `GET /` from Service `namespace/name` at its cluster IP and first port, through
/// the sandbox's kube-proxy. Connecting is tried again until the proxy's rules for a new Service
/// are in place (at most 30 s); a response that is not `200 OK` fails the test.
pub async fn service_answer(client: &kube::Client, namespace: &str, name: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let service =
        kube::Api::<k8s_openapi::api::core::v1::Service>::namespaced(client.clone(), namespace)
            .get(name)
            .await
            .expect("the Service");
    let spec = service.spec.expect("spec");
    let ip = spec.cluster_ip.expect("a cluster IP");
    let port = spec.ports.expect("ports")[0].port;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut pause = std::time::Duration::from_millis(50);
    loop {
        let attempt = async {
            let mut stream = tokio::net::TcpStream::connect((ip.as_str(), port as u16)).await?;
            stream
                .write_all(format!("GET / HTTP/1.0\r\nHost: {ip}\r\n\r\n").as_bytes())
                .await?;
            let mut response = String::new();
            stream.read_to_string(&mut response).await?;
            Ok::<_, std::io::Error>(response)
        };
        match tokio::time::timeout(std::time::Duration::from_secs(3), attempt).await {
            Ok(Ok(response)) if !response.is_empty() => {
                let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
                assert!(
                    head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
                    "{response}"
                );
                return body.to_string();
            }
            outcome if tokio::time::Instant::now() + pause > deadline => {
                panic!("Service {namespace}/{name} ({ip}:{port}) does not answer: {outcome:?}")
            }
            _ => {}
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(std::time::Duration::from_secs(1));
    }
}

/// When the server created object `name` (its creationTimestamp).
pub async fn created_at<K>(api: &kube::Api<K>, name: &str) -> k8s_openapi::jiff::Timestamp
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.get(name)
        .await
        .unwrap_or_else(|e| panic!("get {name}: {e}"))
        .meta()
        .creation_timestamp
        .clone()
        .unwrap_or_else(|| panic!("{name} has no creationTimestamp"))
        .0
}
