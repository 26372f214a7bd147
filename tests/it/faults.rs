//! Faults between envboot and AWS: a proxy on 127.0.0.1 in front of moto answers some requests
//! with 503, throttling errors or a dropped connection. Apply converges through retries; when the
//! faults never stop it fails with a clear error, and a rerun finishes the job.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does with the n-th request (counting from 1).
#[derive(Clone, Copy)]
enum Faults {
    /// Every third request fails (503, throttling, dropped connection in turn).
    EveryThird,
    /// Every request fails with 503.
    Always,
}

/// Reads one HTTP/1.1 request (headers and Content-Length body).
async fn read_request(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let headers = String::from_utf8_lossy(&buf[..end]).to_lowercase();
            let length: usize = headers
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + length {
                let n = stream.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Some(buf);
        }
    }
}

/// Starts the proxy in front of `upstream` (host:port); returns its address and the count of
/// faults it injected.
async fn proxy(upstream: String, faults: Faults) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    let injected = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = injected.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let upstream = upstream.clone();
            let n = requests.fetch_add(1, Ordering::SeqCst) + 1;
            let injected = counter.clone();
            tokio::spawn(async move {
                let Some(request) = read_request(&mut client).await else {
                    return;
                };
                let fault = match faults {
                    Faults::Always => Some(0),
                    Faults::EveryThird if n.is_multiple_of(3) => Some((n / 3) % 3),
                    Faults::EveryThird => None,
                };
                match fault {
                    Some(kind) => {
                        injected.fetch_add(1, Ordering::SeqCst);
                        let response: &[u8] = match kind {
                            0 => b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                            1 => b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/xml\r\nContent-Length: 175\r\nConnection: close\r\n\r\n<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors></Response>",
                            _ => b"",
                        };
                        let _ = client.write_all(response).await;
                    }
                    None => {
                        let Ok(mut server) = TcpStream::connect(&upstream).await else {
                            return;
                        };
                        if server.write_all(&request).await.is_ok() {
                            let mut response = Vec::new();
                            let _ = server.read_to_end(&mut response).await;
                            let _ = client.write_all(&response).await;
                        }
                    }
                }
                let _ = client.shutdown().await;
            });
        }
    });
    (address, injected)
}

fn network_only(name: &str) -> String {
    format!(
        "apiVersion: envboot.dev/v1alpha1\nkind: Environment\nname: {name}\ncloud: {{provider: aws, region: us-east-1}}\ninfrastructure:\n  - name: network\n    module: network\n    inputs: {{cidr: 10.60.0.0/16, zone_a: us-east-1a, zone_b: us-east-1b, subnet_a_cidr: 10.60.1.0/24, subnet_b_cidr: 10.60.2.0/24}}\n  - name: web\n    module: web-tier\n    inputs: {{vpc_id: '${{module.network.vpc_id}}', subnet_id: '${{module.network.subnet_a_id}}', ami: ami-03cf127a}}\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_converges_through_503s_throttling_and_dropped_connections() {
    let shared = sandbox();
    let settings = shared.settings();
    let name = unique("faults");
    let repo = Repo::new(&name, &network_only(&name));
    let upstream = settings["AWS_ENDPOINT_URL"]
        .trim_start_matches("http://")
        .to_string();
    let (address, injected) = proxy(upstream, Faults::EveryThird).await;
    let mut through_proxy = settings.clone();
    through_proxy.insert("AWS_ENDPOINT_URL".into(), format!("http://{address}"));

    // Off the runtime: the proxy's tasks run on it.
    let run = Envboot::new(&through_proxy)
        .args(["apply", &name, "--output", "text"])
        .repo(&repo)
        .run_off_runtime()
        .await;
    run.assert_ok();
    assert!(injected.load(Ordering::SeqCst) >= 3, "faults were injected");

    let ec2 = ec2(settings).await;
    let owned = owned_aws(&ec2, &name).await;
    let mut addresses: Vec<&str> = owned.resources.iter().map(|o| o.address.as_str()).collect();
    addresses.sort();
    assert_eq!(
        addresses,
        vec![
            "network.igw",
            "network.public",
            "network.public_a",
            "network.public_b",
            "network.vpc",
            "web.server",
            "web.web"
        ],
        "exactly one of each, despite retried creates"
    );
    envboot(&repo, settings, &["destroy", &name]).assert_ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn faults_that_never_stop_end_the_run_with_a_clear_error_and_a_rerun_finishes() {
    let shared = sandbox();
    let settings = shared.settings();
    let name = unique("outage");
    let repo = Repo::new(&name, &network_only(&name));
    let upstream = settings["AWS_ENDPOINT_URL"]
        .trim_start_matches("http://")
        .to_string();
    let (address, _) = proxy(upstream, Faults::Always).await;
    let mut through_proxy = settings.clone();
    through_proxy.insert("AWS_ENDPOINT_URL".into(), format!("http://{address}"));

    let run = Envboot::new(&through_proxy)
        .args(["plan", &name])
        .repo(&repo)
        .run_off_runtime()
        .await;
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr
            .contains(&format!("for environment {name} failed")),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("Describe"),
        "names the API call: {}",
        run.stderr
    );

    envboot(&repo, settings, &["apply", &name]).assert_ok();
    let ec2 = ec2(settings).await;
    assert_eq!(owned_aws(&ec2, &name).await.len(), 7);
    envboot(&repo, settings, &["destroy", &name]).assert_ok();
}
