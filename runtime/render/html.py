def render_html(r):
    raise NotImplementedError
