"""A small Flask app caching through Flask-Caching's memcached backend. mcpool measures its cache with
`FLASK_APP=app mcpool bench --strategy flask-app`, run from this folder."""

import os

from flask import Flask, jsonify
from flask_caching import Cache

app = Flask(__name__)
app.config.from_mapping(
    CACHE_TYPE="MemcachedCache",
    CACHE_MEMCACHED_SERVERS=os.environ.get("MEMCACHED_SERVERS", "127.0.0.1:11211").split(","),
    CACHE_DEFAULT_TIMEOUT=300,
    CACHE_KEY_PREFIX="shop_",
)
cache = Cache(app)


@app.route("/product/<int:product_id>")
@cache.cached(timeout=60)
def product(product_id: int):
    return jsonify(id=product_id, name=f"Product {product_id}")  # a database query, in a real app
