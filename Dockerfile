# The jcu services (publisher, subscriber, TAXII server, audit tools) for machines with Docker.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md constraints.txt ./
COPY broker ./broker
COPY connectors ./connectors
COPY schemas ./schemas
COPY policies ./policies
RUN pip install --no-cache-dir -c constraints.txt . \
 && useradd --create-home --uid 10001 jcu
USER jcu
ENV JCU_HOME=/home/jcu/state JCU_LOG_FORMAT=json
ENTRYPOINT ["jcu"]
CMD ["--help"]
