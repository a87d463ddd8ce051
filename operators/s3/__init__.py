"""S3 for the Airflow side: ingest, atomic publish, CDN and lifecycle over the amazon provider.

Each module has one concern and talks to S3 only through a botocore client built from the
Airflow connection (`client.py`), so the same code runs against AWS, MinIO or moto's server.
"""
