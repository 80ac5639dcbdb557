"""Generated sections of hand-written Markdown files (models/README.md's
sizes and paper-row commands): the text between two marker comments."""
import re


def rewrite_section(text, begin, end, section):
    """Replace the section from `begin` to `end` (markers included; `section`
    starts and ends with them) or append it when the text has none."""
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    if pattern.search(text):
        return pattern.sub(lambda _: section, text)
    return text.rstrip("\n") + "\n\n" + section + "\n"
