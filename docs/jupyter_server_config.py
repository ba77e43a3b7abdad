# Voila as a Jupyter server extension (JupyterHub, Binder) with the settings of `attention-explorer serve`.
# docs/deploy.md explains each line; tests/test_classroom.py checks that both agree.
c = get_config()  # noqa: F821 - provided by Jupyter when it loads this file

c.ServerApp.default_url = "/voila/render/dashboards/explorer.ipynb"
c.ServerApp.terminals_enabled = False
# mathjax_url and mathjax_config set to None, as standalone Voila (the serve command) sets them: Voila's page then
# typesets with the MathJax bundled in its own JavaScript. Left unset, a server extension's page asks a CDN for
# MathJax, and a class offline sees the Mechanism tab's equations as raw LaTeX.
c.ServerApp.tornado_settings = {"websocket_max_message_size": 10_000_000, "compress_response": True,
                                "mathjax_url": None, "mathjax_config": None}
c.VoilaConfiguration.template = "explorer"
c.VoilaConfiguration.strip_sources = True
c.VoilaConfiguration.show_tracebacks = False
c.VoilaConfiguration.file_denylist = [".*"]
c.VoilaConfiguration.extension_denylist = ["jupyterlab-plotly"]  # explorer.cli.PAGE_EXTENSIONS_LEFT_OUT
c.MappingKernelManager.cull_idle_timeout = 300
c.MappingKernelManager.cull_interval = 60
# A server left without its hub (docs/jupyterhub_config.py keeps servers over a hub restart) stops itself
# 10 minutes after its last kernel was culled.
c.ServerApp.shutdown_no_activity_timeout = 600
