"""Operations on pushed models: serving them (`serve.py`), the versions ML Metadata records
(`model_versions.py`) and rolling back to an earlier one (`rollback.py`).

It sits above the model server (`serving/`), the store readers (`metadata/`) and the runner
(`orchestration/`), and below the command line (`cli/`).
"""
