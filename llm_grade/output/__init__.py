"""What a grading run is turned into (trusted side, after grading): ``text`` (cleaning
learner text for every exporter), the HTML report (``report`` and its figures), and
``exporters`` (Gradescope JSON, JUnit XML, CSV). Nothing here runs learner code.
"""
