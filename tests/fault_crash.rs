//! SIGKILL `rolecall run` at random points while 100 objects converge, restart it, ten times
//! over: in the end every object is Ready, moto holds exactly one AWS object per Kubernetes
//! object, and no rolecall-tagged object is orphaned, before and after deletion.
//!
//! The kill points come from a random seed printed at the start; set ROLECALL_CRASH_SEED to
//! replay a run.

mod common;

use std::time::Duration;

use common::leaks;
use common::pairs;
use common::process::OperatorProcess;

const PAIRS: usize = 50;
const KILLS: usize = 10;

/// A small deterministic generator (xorshift) so a seed replays the same kill points.
struct KillPoints(u64);

impl KillPoints {
    fn next_millis(&mut self, max: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % max
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_converges_once_through_ten_sigkills() {
    let client = common::kube_client().await;
    common::install_crds(&client).await;
    let namespace = common::fresh_namespace(&client, "crash").await;
    let seed = std::env::var("ROLECALL_CRASH_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(|| {
            let mut bytes = [0u8; 8];
            getrandom::fill(&mut bytes).expect("random seed");
            u64::from_le_bytes(bytes) | 1
        });
    println!("kill points from ROLECALL_CRASH_SEED={seed}");
    let mut points = KillPoints(seed);

    pairs::apply(&client, &namespace, 0..PAIRS).await;
    for kill in 0..KILLS {
        let mut operator = OperatorProcess::start(&namespace, &[]);
        // Between start-up and well into the work: a kill at any moment must be survivable.
        let after = Duration::from_millis(points.next_millis(4000));
        tokio::time::sleep(after).await;
        operator.kill();
        let ready = pairs::ready_count(&client, &namespace).await;
        println!(
            "kill {}: after {after:?}, {ready} of {} Ready",
            kill + 1,
            PAIRS * 2
        );
    }

    let _operator = OperatorProcess::start(&namespace, &[]);
    pairs::wait_all_ready(&client, &namespace, PAIRS, Duration::from_secs(180)).await;

    let aws = common::operator::aws_clients().await;
    let tagged = leaks::tagged_in_namespace(&aws, &namespace).await;
    assert_eq!(
        tagged.len(),
        PAIRS * 2,
        "one AWS policy and one role per pair, nothing created twice: {tagged:?}"
    );
    leaks::assert_no_leaks(&client, &aws, &namespace).await;

    pairs::delete_all(&client, &namespace, Duration::from_secs(180)).await;
    leaks::assert_no_leaks(&client, &aws, &namespace).await;
    assert!(
        leaks::tagged_in_namespace(&aws, &namespace)
            .await
            .is_empty()
    );
}
