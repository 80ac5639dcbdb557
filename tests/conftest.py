"""The project's package (`dcd`, installed editable into .venv by
tools/setup.sh) and pycaffe (linked by tools/link_venv.sh) are imported
as installed; test helper modules are on pytest.ini's pythonpath."""
