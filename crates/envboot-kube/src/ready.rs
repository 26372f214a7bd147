//! Readiness of live objects, computed the way kstatus does, from the object alone.

use serde_json::Value;

/// Whether an object is ready, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    NotReady(String),
    /// Not ready, and it never will be by itself: a failed Job or Pod.
    Failed(String),
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn condition<'a>(object: &'a Value, kind: &str) -> Option<&'a Value> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

fn condition_true(object: &Value, kind: &str) -> bool {
    condition(object, kind).is_some_and(|c| c["status"] == "True")
}

/// Readiness of `object` (a live object as JSON).
///
/// Deployments, StatefulSets and DaemonSets: the controller saw the latest generation and every
/// replica is updated and available. Jobs: complete. CRDs: Established. PVCs: Bound. Services of
/// type LoadBalancer: an ingress address. Anything else with a `Ready` condition: that
/// condition; without one: ready once it exists.
pub fn readiness(object: &Value) -> Readiness {
    let kind = object["kind"].as_str().unwrap_or_default();
    let status = &object["status"];
    let generation = int(&object["metadata"]["generation"]);
    let observed = int(&status["observedGeneration"]);
    let stale = || {
        Readiness::NotReady(format!(
            "the controller has not observed generation {generation} yet (observed {observed})"
        ))
    };
    match kind {
        "Deployment" | "StatefulSet" => {
            if observed < generation {
                return stale();
            }
            if kind == "Deployment" {
                if let Some(c) = condition(object, "Progressing")
                    .filter(|c| c["reason"] == "ProgressDeadlineExceeded")
                {
                    return Readiness::Failed(format!(
                        "the rollout is stuck (ProgressDeadlineExceeded: {})",
                        c["message"].as_str().unwrap_or("no message")
                    ));
                }
            }
            let want = object["spec"]["replicas"].as_i64().unwrap_or(1);
            let total = int(&status["replicas"]);
            let updated = int(&status["updatedReplicas"]);
            let ready = int(&status["readyReplicas"]);
            let available = if kind == "Deployment" {
                int(&status["availableReplicas"])
            } else {
                ready
            };
            // A StatefulSet rolling out: pods of the old revision are still being replaced.
            let rolling = kind == "StatefulSet"
                && object["spec"]["updateStrategy"]["type"] != "OnDelete"
                && status["updateRevision"].is_string()
                && status["currentRevision"] != status["updateRevision"];
            if updated < want {
                Readiness::NotReady(format!("{updated} of {want} replicas updated"))
            } else if ready < want || available < want {
                Readiness::NotReady(format!("{ready} of {want} replicas ready"))
            } else if total > want {
                // The new pods are ready; pods of the old revision are still terminating.
                Readiness::NotReady(format!("{} old replicas still terminating", total - want))
            } else if rolling {
                Readiness::NotReady(format!(
                    "revision {} not rolled out to every replica yet",
                    status["updateRevision"].as_str().unwrap_or("?")
                ))
            } else {
                Readiness::Ready
            }
        }
        "DaemonSet" => {
            if observed < generation {
                return stale();
            }
            let want = int(&status["desiredNumberScheduled"]);
            let available = int(&status["numberAvailable"]);
            let updated = int(&status["updatedNumberScheduled"]);
            if updated < want || available < want {
                Readiness::NotReady(format!(
                    "{available} of {want} pods available, {updated} updated"
                ))
            } else {
                Readiness::Ready
            }
        }
        "Job" => {
            if let Some(c) = condition(object, "Failed").filter(|c| c["status"] == "True") {
                Readiness::Failed(format!(
                    "the job failed ({}: {})",
                    c["reason"].as_str().unwrap_or("Failed"),
                    c["message"].as_str().unwrap_or("no message")
                ))
            } else if condition_true(object, "Complete") {
                Readiness::Ready
            } else {
                Readiness::NotReady("the job has not completed".into())
            }
        }
        "Pod" => match status["phase"].as_str() {
            Some("Succeeded") => Readiness::Ready,
            Some("Failed") => Readiness::Failed(format!(
                "the pod failed{}",
                status["reason"]
                    .as_str()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            )),
            _ if condition_true(object, "Ready") => Readiness::Ready,
            phase => Readiness::NotReady(format!("phase {}", phase.unwrap_or("Pending"))),
        },
        "CustomResourceDefinition" => {
            if condition_true(object, "Established") {
                Readiness::Ready
            } else {
                Readiness::NotReady("not Established yet".into())
            }
        }
        "PersistentVolumeClaim" => {
            if status["phase"] == "Bound" {
                Readiness::Ready
            } else {
                Readiness::NotReady(format!(
                    "phase {}",
                    status["phase"].as_str().unwrap_or("Pending")
                ))
            }
        }
        "Service" if object["spec"]["type"] == "LoadBalancer" => {
            if status["loadBalancer"]["ingress"]
                .as_array()
                .is_some_and(|i| !i.is_empty())
            {
                Readiness::Ready
            } else {
                Readiness::NotReady("the load balancer has no address yet".into())
            }
        }
        _ => match condition(object, "Ready") {
            Some(c) if c["status"] == "True" => Readiness::Ready,
            Some(c) => Readiness::NotReady(format!(
                "Ready is {}: {}",
                c["status"].as_str().unwrap_or("Unknown"),
                c["message"]
                    .as_str()
                    .filter(|m| !m.is_empty())
                    .or(c["reason"].as_str())
                    .unwrap_or("no message")
            )),
            None => Readiness::Ready,
        },
    }
}

/// The kinds whose readiness is their pods': when one is not ready, its pods say why.
pub fn has_pods(kind: &str) -> bool {
    matches!(kind, "Deployment" | "StatefulSet" | "DaemonSet" | "Job")
}

/// A workload's `spec.selector` (a `LabelSelector`) as the `labelSelector` query the API takes;
/// `None` if it has none or uses an operator the query cannot say.
pub fn selector_query(selector: &Value) -> Option<String> {
    let mut terms = Vec::new();
    if let Some(labels) = selector["matchLabels"].as_object() {
        for (k, v) in labels {
            terms.push(format!("{k}={}", v.as_str()?));
        }
    }
    for e in selector["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let key = e["key"].as_str()?;
        let values = || -> Option<String> {
            let vs: Option<Vec<&str>> = e["values"].as_array()?.iter().map(Value::as_str).collect();
            Some(vs?.join(","))
        };
        terms.push(match e["operator"].as_str()? {
            "In" => format!("{key} in ({})", values()?),
            "NotIn" => format!("{key} notin ({})", values()?),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            _ => return None,
        });
    }
    (!terms.is_empty()).then(|| terms.join(","))
}

/// Why these pods (a workload's, as JSON) are not running or not ready, as the kubelet and the
/// scheduler reported it: one line per distinct problem, naming the first pod that has it and
/// how many have it. Waiting reasons that are only progress (`ContainerCreating`,
/// `PodInitializing`) are not problems.
pub fn pod_problems(pods: &[Value]) -> Vec<String> {
    let mut problems: Vec<(String, String, usize)> = Vec::new();
    for pod in pods {
        let name = pod["metadata"]["name"].as_str().unwrap_or("?");
        for problem in problems_of(pod) {
            match problems.iter_mut().find(|(p, _, _)| *p == problem) {
                Some((_, _, n)) => *n += 1,
                None => problems.push((problem, name.to_string(), 1)),
            }
        }
    }
    problems
        .into_iter()
        .map(|(problem, first, n)| match n {
            1 => format!("pod {first}: {problem}"),
            _ => format!("pod {first} (and {} more): {problem}", n - 1),
        })
        .collect()
}

fn problems_of(pod: &Value) -> Vec<String> {
    let status = &pod["status"];
    let mut out = Vec::new();
    if let Some(c) = condition(pod, "PodScheduled").filter(|c| c["status"] == "False") {
        out.push(format!(
            "not scheduled ({}): {}",
            c["reason"].as_str().unwrap_or("Unschedulable"),
            c["message"].as_str().unwrap_or("no message")
        ));
    }
    let statuses = ["initContainerStatuses", "containerStatuses"]
        .into_iter()
        .flat_map(|field| status[field].as_array().into_iter().flatten());
    for c in statuses {
        let container = c["name"].as_str().unwrap_or("?");
        let restarts = int(&c["restartCount"]);
        let last = &c["lastState"]["terminated"];
        if let Some(waiting) = c["state"]["waiting"].as_object() {
            let reason = waiting
                .get("reason")
                .and_then(Value::as_str)
                .unwrap_or("Waiting");
            if matches!(reason, "ContainerCreating" | "PodInitializing") {
                continue;
            }
            let mut line = format!("container {container}: {reason}");
            if let Some(message) = waiting.get("message").and_then(Value::as_str) {
                line.push_str(&format!(": {message}"));
            }
            if last.is_object() {
                line.push_str(&format!(
                    " (last exit code {}, {restarts} restarts)",
                    int(&last["exitCode"])
                ));
            }
            out.push(line);
        } else if let Some(done) = c["state"]["terminated"].as_object() {
            let code = done.get("exitCode").map(int).unwrap_or(0);
            if code != 0 {
                out.push(format!(
                    "container {container} exited with code {code} ({})",
                    done.get("reason")
                        .and_then(Value::as_str)
                        .unwrap_or("Error")
                ));
            }
        } else if c["state"]["running"].is_object() && c["ready"] == false {
            out.push(format!(
                "container {container}: running, not ready (readiness probe)"
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_deployment_is_ready_when_every_replica_is_updated_and_available() {
        let mut d = json!({"kind": "Deployment", "metadata": {"generation": 2}, "spec": {"replicas": 2},
            "status": {"observedGeneration": 1, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2}});
        assert!(matches!(readiness(&d), Readiness::NotReady(m) if m.contains("generation 2")));
        d["status"]["observedGeneration"] = json!(2);
        d["status"]["readyReplicas"] = json!(1);
        assert_eq!(
            readiness(&d),
            Readiness::NotReady("1 of 2 replicas ready".into())
        );
        d["status"]["readyReplicas"] = json!(2);
        // Mid-rollout: the new pods are ready, an old one is still there.
        d["status"]["replicas"] = json!(3);
        assert_eq!(
            readiness(&d),
            Readiness::NotReady("1 old replicas still terminating".into())
        );
        d["status"]["replicas"] = json!(2);
        assert_eq!(readiness(&d), Readiness::Ready);
        d["status"]["conditions"] = json!([{"type": "Progressing", "status": "False",
            "reason": "ProgressDeadlineExceeded", "message": "ReplicaSet \"x\" has timed out progressing."}]);
        assert!(matches!(readiness(&d), Readiness::Failed(m) if m.contains("stuck")));
    }

    #[test]
    fn a_statefulset_is_ready_once_every_replica_runs_the_update_revision() {
        let mut s = json!({"kind": "StatefulSet", "metadata": {"generation": 1}, "spec": {"replicas": 2},
            "status": {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2,
                       "currentRevision": "web-1", "updateRevision": "web-2"}});
        assert!(matches!(readiness(&s), Readiness::NotReady(m) if m.contains("web-2")));
        s["status"]["currentRevision"] = json!("web-2");
        assert_eq!(readiness(&s), Readiness::Ready);
    }

    #[test]
    fn jobs_crds_claims_and_load_balancers() {
        let job = json!({"kind": "Job", "status": {"conditions": [{"type": "Complete", "status": "True"}]}});
        assert_eq!(readiness(&job), Readiness::Ready);
        let failed = json!({"kind": "Job", "status": {"conditions": [{"type": "Failed", "status": "True",
            "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]}});
        assert_eq!(
            readiness(&failed),
            Readiness::Failed("the job failed (BackoffLimitExceeded: Job has reached the specified backoff limit)".into())
        );
        let pod = |phase: &str| json!({"kind": "Pod", "status": {"phase": phase}});
        assert_eq!(readiness(&pod("Succeeded")), Readiness::Ready);
        assert_eq!(
            readiness(&pod("Failed")),
            Readiness::Failed("the pod failed".into())
        );
        assert_eq!(
            readiness(&pod("Running")),
            Readiness::NotReady("phase Running".into())
        );
        let crd = json!({"kind": "CustomResourceDefinition", "status": {}});
        assert!(matches!(readiness(&crd), Readiness::NotReady(_)));
        let pvc = json!({"kind": "PersistentVolumeClaim", "status": {"phase": "Pending"}});
        assert_eq!(readiness(&pvc), Readiness::NotReady("phase Pending".into()));
        let lb = json!({"kind": "Service", "spec": {"type": "LoadBalancer"}, "status": {"loadBalancer": {}}});
        assert!(matches!(readiness(&lb), Readiness::NotReady(_)));
    }

    #[test]
    fn other_objects_follow_their_ready_condition_or_are_ready_once_they_exist() {
        assert_eq!(readiness(&json!({"kind": "ConfigMap"})), Readiness::Ready);
        let custom = json!({"kind": "Database", "status": {"conditions": [{"type": "Ready", "status": "False", "message": "provisioning"}]}});
        assert_eq!(
            readiness(&custom),
            Readiness::NotReady("Ready is False: provisioning".into())
        );
    }

    #[test]
    fn a_selector_becomes_the_query_the_api_takes() {
        let s = json!({"matchLabels": {"app": "web"}, "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["a", "b"]},
            {"key": "old", "operator": "DoesNotExist"}]});
        assert_eq!(
            selector_query(&s).as_deref(),
            Some("app=web,tier in (a,b),!old")
        );
        assert_eq!(selector_query(&json!({})), None);
        assert_eq!(
            selector_query(&json!({"matchExpressions": [{"key": "k", "operator": "Weird"}]})),
            None
        );
    }

    #[test]
    fn pods_say_why_they_are_not_ready_once_per_problem() {
        let waiting = |name: &str, reason: &str| {
            json!({"metadata": {"name": name}, "status": {"containerStatuses": [{"name": "web",
                "ready": false, "restartCount": 3,
                "state": {"waiting": {"reason": reason, "message": "m"}},
                "lastState": {"terminated": {"exitCode": 1}}}]}})
        };
        let pods = [
            waiting("a", "CrashLoopBackOff"),
            waiting("b", "CrashLoopBackOff"),
            waiting("c", "ContainerCreating"),
            json!({"metadata": {"name": "d"}, "status": {"conditions": [{"type": "PodScheduled",
                "status": "False", "reason": "Unschedulable", "message": "0/1 nodes"}]}}),
            json!({"metadata": {"name": "e"}, "status": {"containerStatuses": [{"name": "job",
                "state": {"terminated": {"exitCode": 2, "reason": "Error"}}}]}}),
        ];
        assert_eq!(
            pod_problems(&pods),
            [
                "pod a (and 1 more): container web: CrashLoopBackOff: m (last exit code 1, 3 restarts)",
                "pod d: not scheduled (Unschedulable): 0/1 nodes",
                "pod e: container job exited with code 2 (Error)",
            ]
        );
    }
}
