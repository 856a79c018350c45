//! The write fence of `ServiceCalls`.

use super::*;

/// A request that records whether it was ever sent.
async fn request(sent: &AtomicBool) -> Result<(), SdkError<aws_sdk_iam::Error, HttpResponse>> {
    sent.store(true, Ordering::SeqCst);
    Ok(())
}

#[tokio::test]
async fn after_the_lease_is_lost_no_write_is_sent_but_reads_are() {
    let log = Arc::new(CallLog::default());
    let iam = log.service("iam");
    let sent = AtomicBool::new(false);
    iam.call(CallKind::Write, "CreateRole", request(&sent))
        .await
        .unwrap();
    assert!(
        sent.swap(false, Ordering::SeqCst),
        "a leader's write is sent"
    );

    log.fence_writes();
    let refused = iam
        .call(CallKind::Write, "CreateRole", request(&sent))
        .await
        .unwrap_err();
    assert!(
        !sent.load(Ordering::SeqCst),
        "a fenced write must not be sent"
    );
    assert_eq!(refused.class, ErrorClass::Transient);
    assert!(refused.to_string().contains("leader lease"), "{refused}");
    iam.call(CallKind::Read, "GetRole", request(&sent))
        .await
        .unwrap();
    assert!(sent.load(Ordering::SeqCst), "reads still go out");
}
