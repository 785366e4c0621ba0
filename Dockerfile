# One image for both the API and the worker (docker-compose.yml picks the command).
FROM python:3.11-slim
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY api api
COPY worker worker
COPY shared shared
COPY models models
ENV PYTHONPATH=/app TF_CPP_MIN_LOG_LEVEL=2
