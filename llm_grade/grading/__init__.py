"""What graders import (trusted side): ``compare`` (expected vs got, with tolerances from the
run's context), ``toolkit`` (reference pairs, structure, dropout and device checks),
``strategies`` (Hypothesis strategies), ``outcomes`` (the ways a check ends), and behind
``toolkit``: ``pairs`` (reference/learner pairs, gradients), ``structure`` (the learner's own
module tree) and ``behaviour`` (dropout statistics, the meta device, ValueErrors);
``diagnose`` (patterns in a difference), ``context`` (the run's tolerances and reference
pool) and ``visuals`` (the report's pictures, computed through the handle).
"""
