FROM python:3.11-slim
RUN useradd --system --uid 10001 --home /var/lib/sekisho --create-home sekisho
WORKDIR /opt/sekisho
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir '.[redis,postgres]'
USER sekisho
WORKDIR /var/lib/sekisho
EXPOSE 8080
ENV SEKISHO_SERVER__LISTEN=0.0.0.0:8080
ENTRYPOINT ["sekisho"]
CMD ["serve", "--config", "/etc/sekisho/sekisho.toml"]
