"""The sandbox: the one narrow way to learner code, and the process it runs in.

Trusted side (the grading process): ``handle`` (the submission handle graders call),
``transport`` (starts the worker under bubblewrap with limits and kills its tree),
``wire`` (plain-data encoding and the frames both sides read and write).

Learner side (the worker process): ``worker`` (the entry module), ``executor`` (builds and
calls learner code), ``forbidden`` (the run-time guard on forbidden APIs), ``specimens``
(small scripted modules used inside the worker). The trusted side never imports the worker's
entry module; the worker imports only ``wire``, ``executor``, ``specimens`` and what they need
before it closes the doors to the rest of llm_grade.
"""
