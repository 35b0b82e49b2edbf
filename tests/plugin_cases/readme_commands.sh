pytest --sqlaudit                                     # audit every test, fail on findings
pytest --sqlaudit --sqlaudit-fail-on=n_plus_one,write_loop --sqlaudit-severity=warning
pytest --sqlaudit-report --sqlaudit-json=sqlaudit.json      # observe only: summary and JSON
pytest --sqlaudit-baseline=sqlaudit-baseline.json --sqlaudit-update-baseline   # adopt
pytest --sqlaudit-baseline=sqlaudit-baseline.json     # CI: more fails, less is reported
pytest --sqlaudit-baseline=sqlaudit-baseline.json --sqlaudit-update-baseline=tighten
pytest -n 2 --sqlaudit-baseline=sqlaudit-baseline.json --sqlaudit-report
pytest --sqlaudit --sqlaudit-sarif=sqlaudit.sarif --junitxml=junit.xml   # CI: SARIF, JUnit
