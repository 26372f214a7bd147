//! The environment's lock in AWS itself, for environments whose cluster cannot hold it (no
//! cluster, or a k3s cluster envboot provisions): an EC2 key pair named
//! `envboot-lock-<environment>`. CreateKeyPair is atomic and a name exists once per region, so
//! two runs can never both create it. Its tags say who holds it (`envboot:lock-holder`, with
//! host and pid) and until when (`envboot:lock-expires`, Unix seconds); the holder renews the
//! expiry every third of the duration. An expired lock, or one whose holder's process is gone
//! on this same machine, is taken over: deleted by its id (so two takers cannot delete each
//! other's new lock) and created again.
//!
//! The key pair carries no `envboot:environment` tag: it is never part of the environment's
//! resources, plans or leak reports.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_ec2::types::{ResourceType as Rt, Tag, TagSpecification};
use envboot_core::lock::LockHealth;

use crate::{call_failed, filter, tag, tag_value, Aws, Error, Result};

/// The lock's tag naming the environment.
pub const TAG_LOCK: &str = "envboot:lock";
const TAG_HOLDER: &str = "envboot:lock-holder";
const TAG_EXPIRES: &str = "envboot:lock-expires";

/// The lock's name for `environment`.
pub fn lock_name(environment: &str) -> String {
    format!("envboot-lock-{environment}")
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A held lock; [`AwsLock::release`] gives it back.
pub struct AwsLock {
    aws: Aws,
    name: String,
    id: String,
    renewer: tokio::task::JoinHandle<()>,
}

/// Whether a holder identity (`envboot CMD (user@host, pid N)`) names a process on this machine
/// that no longer runs.
fn holder_died_here(holder: &str, host: &str) -> bool {
    envboot_core::lock::host_and_pid(holder).is_some_and(|(their_host, pid)| {
        their_host == host
            && pid != std::process::id()
            && !std::path::Path::new(&format!("/proc/{pid}")).exists()
    })
}

impl Aws {
    /// Takes `environment`'s lock for `holder` (renewed every `duration / 3`; `health` is
    /// marked lost if a renewal fails), or fails at once naming the holder.
    pub async fn lock(
        &self,
        environment: &str,
        holder: &str,
        host: &str,
        duration: Duration,
        health: Arc<LockHealth>,
    ) -> Result<AwsLock> {
        let name = lock_name(environment);
        let id = match self.create_lock(environment, &name, holder, duration).await {
            Ok(id) => id,
            Err(Error::CallFailed { code: Some(c), .. }) if c == "InvalidKeyPair.Duplicate" => {
                let (id, tags) = self.read_lock(&name).await?;
                let current = tag_value(&tags, TAG_HOLDER)
                    .unwrap_or("unknown")
                    .to_string();
                let expires: u64 = tag_value(&tags, TAG_EXPIRES)
                    .and_then(|e| e.parse().ok())
                    .unwrap_or(0);
                if expires > unix_now() && !holder_died_here(&current, host) {
                    return Err(Error::Locked {
                        environment: environment.to_string(),
                        holder: current,
                        expires,
                    });
                }
                // Stale: delete that one (by its id) and race for a new one.
                self.delete_lock(&name, &id).await?;
                match self.create_lock(environment, &name, holder, duration).await {
                    Ok(id) => id,
                    Err(Error::CallFailed { code: Some(c), .. })
                        if c == "InvalidKeyPair.Duplicate" =>
                    {
                        let (_, tags) = self.read_lock(&name).await?;
                        return Err(Error::Locked {
                            environment: environment.to_string(),
                            holder: tag_value(&tags, TAG_HOLDER).unwrap_or("unknown").into(),
                            expires: tag_value(&tags, TAG_EXPIRES)
                                .and_then(|e| e.parse().ok())
                                .unwrap_or(0),
                        });
                    }
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        };
        let renewer = {
            let (aws, name, id) = (self.clone(), name.clone(), id.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(duration / 3).await;
                    let expires = (unix_now() + duration.as_secs()).to_string();
                    // Still ours? (A run that took it over after we stalled made a new one.)
                    let still = aws.read_lock(&name).await.map(|(current, _)| current == id);
                    let renewed = match still {
                        Ok(true) => aws
                            .client
                            .create_tags()
                            .resources(&id)
                            .tags(tag(TAG_EXPIRES, &expires))
                            .send()
                            .await
                            .map(|_| ())
                            .map_err(|e| call_failed(&name, "CreateTags")(e).to_string()),
                        Ok(false) => Err("another run took it over".to_string()),
                        Err(e) => Err(e.to_string()),
                    };
                    if let Err(why) = renewed {
                        health.lose(format!("renewing the lock {name} failed: {why}"));
                        return;
                    }
                }
            })
        };
        Ok(AwsLock {
            aws: self.clone(),
            name,
            id,
            renewer,
        })
    }

    async fn create_lock(
        &self,
        environment: &str,
        name: &str,
        holder: &str,
        duration: Duration,
    ) -> Result<String> {
        let expires = (unix_now() + duration.as_secs()).to_string();
        let out = self
            .client
            .create_key_pair()
            .key_name(name)
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(Rt::KeyPair)
                    .tags(tag(TAG_LOCK, environment))
                    .tags(tag(TAG_HOLDER, holder))
                    .tags(tag(TAG_EXPIRES, &expires))
                    .build(),
            )
            .send()
            .await
            .map_err(call_failed(name, "CreateKeyPair"))?;
        out.key_pair_id.ok_or_else(|| Error::MissingInResponse {
            resource: name.to_string(),
            call: "CreateKeyPair",
            what: "KeyPairId",
        })
    }

    /// Deletes the lock key pair `id` (named `name`): by its id, so that a lock another run
    /// made since is never deleted. An EC2 endpoint that ignores `KeyPairId` on DeleteKeyPair
    /// (moto does) still has it afterwards: then, if the pair of that name is still this id, it
    /// is deleted by name.
    async fn delete_lock(&self, name: &str, id: &str) -> Result<()> {
        self.client
            .delete_key_pair()
            .key_pair_id(id)
            .send()
            .await
            .map_err(call_failed(name, "DeleteKeyPair"))?;
        if let Ok((still, _)) = self.read_lock(name).await {
            if still == id {
                self.client
                    .delete_key_pair()
                    .key_name(name)
                    .send()
                    .await
                    .map_err(call_failed(name, "DeleteKeyPair"))?;
            }
        }
        Ok(())
    }

    /// The lock's id and tags.
    async fn read_lock(&self, name: &str) -> Result<(String, Vec<Tag>)> {
        let out = self
            .client
            .describe_key_pairs()
            .filters(filter("key-name", &[name]))
            .send()
            .await
            .map_err(call_failed(name, "DescribeKeyPairs"))?;
        let pair = out
            .key_pairs()
            .first()
            .ok_or_else(|| Error::MissingInResponse {
                resource: name.to_string(),
                call: "DescribeKeyPairs",
                what: "the lock's key pair",
            })?;
        Ok((
            pair.key_pair_id().unwrap_or_default().to_string(),
            pair.tags().to_vec(),
        ))
    }
}

impl AwsLock {
    /// Gives the lock back (deletes the key pair by its id: never one another run made).
    pub async fn release(self) {
        self.renewer.abort();
        let _ = self.aws.delete_lock(&self.name, &self.id).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_is_dead_only_on_this_host_when_its_process_is_gone() {
        let me = format!("envboot apply (u@h, pid {})", std::process::id());
        assert!(!holder_died_here(&me, "h"), "this process runs");
        assert!(holder_died_here("envboot apply (u@h, pid 4294967295)", "h"));
        assert!(!holder_died_here(
            "envboot apply (u@other, pid 4294967295)",
            "h"
        ));
        assert!(!holder_died_here("garbage", "h"));
    }
}
