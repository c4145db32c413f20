"""The sandbox: the one narrow way to learner code, and the process it runs in.

Trusted side (the grading process): ``handle`` (the submission handle graders call) on
``channel`` (its budgets, queued requests and error records), ``transport`` (the request
protocol with a worker) on ``supervisor`` (spawns the worker, reads its replies, kills its
tree), ``confine`` (bubblewrap, the worker's environment and rlimits, the trusted paths it must
not see), ``watchdog`` (the worker's process tree from /proc) and ``limits``.

Both sides: ``wire`` (plain-data encoding) and ``framing`` (the frames both sides read and
write; torch-free, so the transport imports it before any worker starts).

Learner side (the worker process): ``worker`` (the entry module), ``executor`` (builds and
calls learner code) with ``module_ops`` (its requests on modules) and ``learner_errors`` (its
error records), ``forbidden`` (the run-time guard on forbidden APIs), ``specimens`` (small
scripted modules used inside the worker). The trusted side never imports the worker's entry
module; the worker imports only ``framing``, ``wire``, ``executor`` (and its parts),
``forbidden``, ``specimens`` and what they need before it closes the doors to the rest of
llm_grade.
"""
