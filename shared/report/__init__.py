"""Session reports, RPO compliance and cost estimates.

prices     the price table (``prices.json``: Azure list prices with their date, region, source)
cost       pure: change rates measured from the catalog's sessions -> a monthly estimate per policy
rpo        pure: whether each resource has a restore point within its schedule's interval
gather     the report's inputs, read through the Catalog and PolicyStore ports
page       pure: the self-contained HTML page (inline CSS and SVG, no script, no external request)
terminal   pure: the plain-text summary ``bulwark status`` prints
"""
