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
