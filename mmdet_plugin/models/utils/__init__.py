"""Helpers shared by model parts (mmdet's ``models/utils``); free of mmdet imports."""
