"""Judge quality: agreement with human (gold) labels, position and length bias, calibration, cost.

``build.build_report`` reads the store and returns the report as plain JSON
(``blocks`` computes one judge's or batch's metrics); ``metrics`` holds the
statistics; ``text`` prints the report for a terminal and ``html`` renders it
as a page.
"""
