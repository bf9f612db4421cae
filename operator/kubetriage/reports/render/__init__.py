"""Reports as people read them: the command line's table and lists (`cli`), and the Markdown
of a Linear issue (`issue`). Pure: reports in, text out."""
