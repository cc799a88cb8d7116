//! Fence counters: seeded from the server clock, so tokens never go back
//! after the counter is lost; expiring, so they do not pile up; out of
//! reach of any key a user can write.

use stampede::backend::redis::{fence_key, redis};
use stampede::{Cache, RedLock};

use crate::common::{Kind, Store};
use crate::{lock_key, raw, LONG_LEASE};

/// Takes and releases `lock` `times` times; the last token, after checking
/// that each one rose.
async fn tokens(lock: &RedLock, after: u64, times: usize) -> u64 {
    let mut last = after;
    for _ in 0..times {
        let guard = lock.lock().await.unwrap();
        let token = guard.fencing_token();
        assert!(token > last, "token {token} after {last}");
        last = token;
        assert!(guard.release().await.unwrap());
    }
    last
}

/// Namespace `{B` with key `x-lock}:fence` spells `{B:x-lock}:fence`, which
/// was the fence counter of lock `x` in namespace `B`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_namespace_cannot_reach_a_fence_counter() {
    let store = Store::new(Kind::Redis, "victim");
    let victim = store.handle().await;
    // Another tenant of the same server, in namespace `{<victim's namespace>`.
    let attacker = Cache::from_url(&crate::shared_url())
        .await
        .unwrap()
        .with_namespace(&format!("{{{}", store.namespace));
    let spelled = "x-lock}:fence";
    assert_eq!(
        format!("{{{}:{spelled}", store.namespace),
        format!("{{{}}}:fence", lock_key(&store, "x")),
        "the attacker's key spells the old counter name"
    );
    let mut admin = raw(&crate::shared_url()).await;
    let counter = fence_key(&lock_key(&store, "x"));
    let lock = RedLock::new(&victim, "x", LONG_LEASE);
    let last = tokens(&lock, 0, 2).await;

    // Deleting it through the attacker's namespace leaves the counter.
    let _ = attacker.delete(spelled).await.unwrap();
    let kept: Option<u64> = redis::cmd("GET")
        .arg(&counter)
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(kept, Some(last), "the victim's counter was deleted");

    // Junk written there is the attacker's own key, nothing else.
    attacker.set(spelled, b"junk", None).await.unwrap();
    tokens(&lock, last, 2).await;
    assert_eq!(
        attacker.get(spelled).await.unwrap().as_deref(),
        Some(&b"junk"[..])
    );
    assert_eq!(
        victim.get("x-lock").await.unwrap(),
        None,
        "no lock record left behind"
    );
}
