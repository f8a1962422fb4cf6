#!/usr/bin/env bash
# DistilBART recipe in one command: teacher -> students -> distillation -> teacher-vs-student tables.
#
#   bash examples/legacy/seq2seq/distil_recipe.sh [DATA_DIR] [OUTPUT_DIR]
#
# Defaults run offline in about two minutes on 2 CPU cores: a 12-layer teacher shaped like the tiny BART of
# `make tiny-models`, fine-tuned on the shipped WMT en-ro sample, then a 12-6 and a 12-3 student distilled
# from it (KD: KL + label CE + hidden-state MSE, encoder and embeddings frozen). Each distillation run prints
# its table (parameters, generation samples/s measured side by side, BLEU or ROUGE of teacher and student).
# With real models: set TEACHER to a trained checkpoint (e.g. facebook/bart-large-xsum) to skip step 1, and
# raise EPOCHS / the lengths. Variables: PYTHON, BASE, TEACHER, TASK, EPOCHS, TEACHER_EPOCHS, STUDENT_LAYERS.
set -euo pipefail

PYTHON=${PYTHON:-.venv/bin/python}
DATA_DIR=${1:-tests/fixtures/legacy/wmt_en_ro}
OUTPUT_DIR=${2:-outputs/distil-recipe}
BASE=${BASE:-.cache/tiny-models/bart}
TASK=${TASK:-translation}
EPOCHS=${EPOCHS:-10}
TEACHER_EPOCHS=${TEACHER_EPOCHS:-20}
STUDENT_LAYERS=${STUDENT_LAYERS:-6 3}
HERE=examples/legacy/seq2seq
COMMON=(--data_dir "$DATA_DIR" --task "$TASK" --max_source_length 64 --max_target_length 64
        --val_max_target_length 32 --test_max_target_length 32 --per_device_train_batch_size 4
        --learning_rate 3e-3 --save_strategy no --report_to none --overwrite_output_dir)

# 1. The teacher: a randomly initialised 12-layer model of BASE's shape, fine-tuned on the data.
if [[ -z "${TEACHER:-}" ]]; then
    TEACHER=$OUTPUT_DIR/teacher
    rm -rf "$OUTPUT_DIR/teacher_init"
    "$PYTHON" $HERE/save_randomly_initialized_model.py "$BASE" "$OUTPUT_DIR/teacher_init" \
        --encoder_layers=12 --decoder_layers=12
    "$PYTHON" $HERE/finetune_trainer.py --model_name_or_path "$OUTPUT_DIR/teacher_init" \
        --output_dir "$TEACHER" --do_train --num_train_epochs "$TEACHER_EPOCHS" "${COMMON[@]}"
fi

# 2-4. For each student depth: make the student from the teacher (saved in student/), distil, evaluate both.
for layers in $STUDENT_LAYERS; do
    "$PYTHON" $HERE/distillation.py --teacher "$TEACHER" --student_decoder_layers "$layers" \
        --alpha_hid 3.0 --freeze_encoder --freeze_embeds --output_dir "$OUTPUT_DIR/student_12_$layers" \
        --do_train --do_predict --predict_with_generate --num_train_epochs "$EPOCHS" "${COMMON[@]}"
done
echo "Tables: $OUTPUT_DIR/student_12_*/teacher_vs_student.json"
