"""NVTabular operators of the ETL that need a class of their own (importable, so a saved
workflow loads in a fresh process)."""

from merlin.dag.ops.udf import UDF


class DerivedFeature(UDF):
    """``LambdaOp`` whose output column starts without the input column's tags.

    A time column's derived features (hour, day of week, ...) are not times:
    they get only the tags given here (and later ``AddTags``), not ``time``.
    """

    def _compute_tags(self, col_schema, input_schema):
        return col_schema.with_tags(self.output_tags)
