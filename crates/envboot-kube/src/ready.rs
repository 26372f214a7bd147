//! Readiness of live objects, computed the way kstatus does, from the object alone.

use serde_json::Value;

/// Whether an object is ready, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    NotReady(String),
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
            let want = object["spec"]["replicas"].as_i64().unwrap_or(1);
            let updated = int(&status["updatedReplicas"]);
            let ready = int(&status["readyReplicas"]);
            let available = if kind == "Deployment" {
                int(&status["availableReplicas"])
            } else {
                ready
            };
            if updated < want {
                Readiness::NotReady(format!("{updated} of {want} replicas updated"))
            } else if ready < want || available < want {
                Readiness::NotReady(format!("{ready} of {want} replicas ready"))
            } else {
                Readiness::Ready
            }
        }
        "DaemonSet" => {
            if observed < generation {
                return stale();
            }
            let want = int(&status["desiredNumberScheduled"]);
            let ready = int(&status["numberReady"]);
            let updated = int(&status["updatedNumberScheduled"]);
            if updated < want || ready < want {
                Readiness::NotReady(format!("{ready} of {want} pods ready, {updated} updated"))
            } else {
                Readiness::Ready
            }
        }
        "Job" => {
            if condition_true(object, "Failed") {
                Readiness::NotReady("the job failed".into())
            } else if condition_true(object, "Complete") {
                Readiness::Ready
            } else {
                Readiness::NotReady("the job has not completed".into())
            }
        }
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
        assert_eq!(readiness(&d), Readiness::Ready);
    }

    #[test]
    fn jobs_crds_claims_and_load_balancers() {
        let job = json!({"kind": "Job", "status": {"conditions": [{"type": "Complete", "status": "True"}]}});
        assert_eq!(readiness(&job), Readiness::Ready);
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
}
