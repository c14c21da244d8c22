"""The outbox worker: claims due deliveries, sends them through adapters, records the outcome.

- `worker.py`   `DeliveryWorker`: the claimer, the senders' loop, the recorder, lifecycle
- `sender.py`   `Sender`: one claimed copy or notice -> adapter call -> outcome
- `policy.py`   `DeliveryPolicy` and the one retry rule (`decide_retry -> RetryDecision`)
- `progress.py` a large fan-out's progress message and final summary, worded for its author
"""

from bridge.delivery.policy import DeliveryPolicy, RetryDecision, decide_retry
from bridge.delivery.progress import ProgressReporter, progress_text, summary_text
from bridge.delivery.sender import Sender, WorkerStats
from bridge.delivery.worker import DeliveryWorker

__all__ = [
    "DeliveryPolicy",
    "DeliveryWorker",
    "ProgressReporter",
    "RetryDecision",
    "Sender",
    "WorkerStats",
    "decide_retry",
    "progress_text",
    "summary_text",
]
