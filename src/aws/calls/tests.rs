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

/// Pages as an SDK paginator yields them: `pages` answers, then an error if `fail`.
fn paginator(
    pages: u32,
    fail: bool,
) -> PaginationStream<Result<u32, SdkError<aws_sdk_iam::Error, HttpResponse>>> {
    use aws_smithy_async::future::pagination_stream::fn_stream::FnStream;
    PaginationStream::new(FnStream::new(move |tx| {
        Box::pin(async move {
            for page in 0..pages {
                if tx.send(Ok(page)).await.is_err() {
                    return;
                }
            }
            if fail {
                let error = SdkError::timeout_error("no answer");
                let _ = tx.send(Err(error)).await;
            }
        })
    }))
}

#[tokio::test]
async fn each_page_of_a_paginator_counts_as_one_call() {
    let log = Arc::new(CallLog::default());
    let iam = log.service("iam");
    let mut seen = Vec::new();
    iam.pages(CallKind::Read, "ListRoles", paginator(3, false), |page| {
        seen.push(page)
    })
    .await
    .unwrap();
    assert_eq!(seen, [0, 1, 2]);
    assert_eq!(log.snapshot()[&(CallKind::Read, "ListRoles")].ok, 3);

    let error = iam
        .pages(CallKind::Read, "ListRoles", paginator(1, true), |_| {})
        .await
        .unwrap_err();
    assert_eq!(error.class, ErrorClass::Transient);
    let count = log.snapshot()[&(CallKind::Read, "ListRoles")];
    assert_eq!(
        (count.ok, count.failed),
        (4, 1),
        "the failed page counts too"
    );
}
