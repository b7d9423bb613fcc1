def main(argv=None):
    raise SystemExit("lstmfx: command line not written yet")
