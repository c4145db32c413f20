"""Grading a class (trusted side): ``staging`` finds and unpacks each student's folder, zip
or notebook safely; ``batch`` grades them, one isolated grading run per submission.
"""
