def render_junit(r):
    raise NotImplementedError
