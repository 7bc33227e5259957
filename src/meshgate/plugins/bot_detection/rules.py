"""meshgate's own built-in list of User-Agent patterns of well-known bad bots: vulnerability
scanners, brute-forcers, aggressive scrapers and SEO crawlers that ignore robots.txt.
Ordinary HTTP clients (curl, wget, python-requests, Go's http client) and the major search
engines' crawlers are deliberately not listed: deny them with ``config.deny`` if you must.
Matched case-insensitively anywhere in the User-Agent."""

from __future__ import annotations

BAD_BOTS: tuple[str, ...] = (
    # vulnerability scanners and attack tools
    r"sqlmap",
    r"nikto",
    r"nmap scripting engine",
    r"masscan",
    r"zgrab",
    r"nuclei",
    r"acunetix",
    r"netsparker",
    r"w3af",
    r"dirbuster",
    r"gobuster",
    r"wpscan",
    r"havij",
    r"jorgee",
    r"fimap",
    r"openvas",
    r"nessus",
    r"hydra",
    r"zmeu",
    r"morfeus",
    # scrapers and site copiers
    r"httrack",
    r"webcopier",
    r"webzip",
    r"teleport ?pro",
    r"sitesucker",
    r"offline explorer",
    r"grabber",
    r"emailcollector",
    r"email ?extractor",
    # SEO / data crawlers frequently unwanted
    r"mj12bot",
    r"ahrefsbot",
    r"semrushbot",
    r"dotbot",
    r"blexbot",
    r"megaindex",
    r"petalbot",
    r"bytespider",
    r"seekport",
    r"dataforseobot",
)
