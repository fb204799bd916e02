def main() -> None:
    raise SystemExit("cola-train: not built yet")
