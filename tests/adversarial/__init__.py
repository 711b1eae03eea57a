"""The adversarial suite. A package, so that its scheduler is package-scoped: every scenario
ends (and the lying providers close) before the first test outside this folder starts."""
